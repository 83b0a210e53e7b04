"""Code above the first stage (issue 12, items 8 and 9): configuration and display state run at the
top of every stage, installs never per stage; configuration inside a stage is replayed in later ones."""

from __future__ import annotations

import json

import pytest

from conftest import code, md, notebook, write_nb
from nb2pipe.errors import SpecError
from nb2pipe.export import export_notebook
from nb2pipe.notebook import plan_notebook


def plan(*cells, name="nb", split_level=2):
    return plan_notebook(notebook(*cells), name, split_level)


def stage_cells(p):
    return {s.name: [c.number for c in s.code_cells] for s in p.stages}


CONFIGURATION = [
    "import matplotlib.pyplot as plt\nplt.rc('font', size=14)\nplt.rc('axes', labelsize=14)",
    "import matplotlib as mpl\nmpl.rcParams['figure.dpi'] = 50",
    "import matplotlib.pyplot as plt\nplt.style.use('ggplot')",
    "import pandas as pd\npd.set_option('display.max_rows', 5)\npd.options.display.precision = 2",
    "import numpy as np\nnp.set_printoptions(precision=3)\nnp.seterr(all='ignore')",
    "import warnings\nwarnings.filterwarnings('ignore')\nwarnings.simplefilter('ignore', FutureWarning)",
    "import seaborn as sns\nsns.set_theme(style='whitegrid')",
    "%matplotlib inline\n%config InlineBackend.figure_format = 'retina'",
    "import sys\nassert sys.version_info >= (3, 7)",
    "from matplotlib import pyplot as pl\npl.rcParams.update({'figure.figsize': (4, 3)})",
]


@pytest.mark.parametrize("source", CONFIGURATION, ids=range(len(CONFIGURATION)))
def test_configuration_before_the_first_heading_is_setup_not_a_stage(source):
    p = plan(md("# Study"), code(source), md("## Load"), code("a = 1"), md("## Use"), code("b = a"))
    assert [c.number for c in p.setup] == [2]
    assert list(stage_cells(p)) == ["load", "use"]


@pytest.mark.parametrize("source", CONFIGURATION, ids=range(len(CONFIGURATION)))
def test_configuration_above_the_first_stage_tag_is_setup_not_an_error(source):
    p = plan(code(source), code("a = 1", "stage:load"), code("b = a", "stage:use"))
    assert [c.number for c in p.setup] == [1]


@pytest.mark.parametrize(
    "source",
    ["!pip install -r requirements.txt", "%pip install numpy", "!conda install -y numpy",
     "pip install -r requirements.txt --quiet", "!python -m pip install -q pandas", "%%capture\n%pip install numpy"],
)
def test_install_cells_above_the_first_stage_run_in_no_stage_and_are_warned_about(source):
    tagged = plan(code(source), code("a = 1", "stage:load"), code("b = a", "stage:use"))
    headed = plan(md("# Study"), code(source), md("## Load"), code("a = 1"), md("## Use"), code("b = a"))
    for p, install_cell in ((tagged, 1), (headed, 2)):
        everywhere = [c.source for c in p.setup] + [c.source for s in p.stages for c in s.cells]
        assert not any("install" in text for text in everywhere)
        assert [c.number for c in p.installs] == [install_cell]
        assert len(p.warnings) == 1 and "installs packages" in p.warnings[0] and source.split("\n")[-1] in p.warnings[0]


def test_an_install_line_in_a_setup_cell_is_left_out_and_the_imports_stay():
    p = plan(code("%pip install numpy\nimport numpy as np"), code("a = np.ones(2)", "stage:load"))
    (setup,) = p.setup
    assert "import numpy as np" in setup.source
    assert not any(line.lstrip().startswith("%pip") for line in setup.source.splitlines())


def test_configuration_inside_a_stage_is_replayed_in_later_stages_only():
    p = plan(
        md("## Load"), code("import pandas as pd\npd.set_option('display.max_rows', 5)\nframe = pd.DataFrame({'a': [1]})"),
        md("## Plot"), code("import matplotlib.pyplot as plt\nplt.rc('font', size=14)"), code("frame.plot()"),
        md("## Report"), code("print(frame)"),
    )
    replayed = {s.name: [c.source for c in s.replayed] for s in p.stages}
    assert replayed["load"] == []
    assert replayed["plot"] == ["import pandas as pd\npd.set_option('display.max_rows', 5)\npass"]
    assert replayed["report"] == [
        "import pandas as pd\npd.set_option('display.max_rows', 5)\npass",
        "import matplotlib.pyplot as plt\nplt.rc('font', size=14)\npass",
    ]


def test_configuration_that_reads_a_variable_is_not_replayed_but_warned_about():
    p = plan(md("## Load"), code("import pandas as pd\nrows = 5\npd.set_option('display.max_rows', rows)"),
             md("## Use"), code("print(rows)"))
    assert all(not s.replayed for s in p.stages)
    assert any("'rows'" in w and "stage 'load'" in w and "cell 2" in w for w in p.warnings)


def test_a_parameter_read_by_replayed_configuration_is_a_parameter_of_the_later_stage(tmp_path):
    nb = write_nb(
        tmp_path / "nb.ipynb",
        code("rows = 5", "parameters"),
        md("## Load"), code("import pandas as pd\npd.set_option('display.max_rows', rows)\nframe = pd.DataFrame({'a': [1]})"),
        md("## Use"), code("print(frame)"),
    )
    result = export_notebook(nb)
    use = result.pipeline.stage("use")
    assert use.params == ("rows",)
    script = (result.folder / use.script).read_text()
    assert script.index("pd.set_option('display.max_rows', rows)") < script.index("print(frame)")


@pytest.mark.parametrize(
    "source", ["!papermill in.ipynb out.ipynb -p msg hi", "!wget -q https://example.org/data.zip", "%%bash\nmkdir -p data"]
)
def test_shell_commands_and_cell_magics_do_work_they_are_not_setup(source):
    p = plan(md("## Fetch"), code(source), md("## Use"), code("b = 1"))
    assert p.setup == ()
    assert stage_cells(p) == {"fetch": [2], "use": [4]}
    with pytest.raises(SpecError, match="above the first stage and does more than import or define"):
        plan(code(source), code("a = 1", "stage:load"))


@pytest.mark.parametrize("source", ["%load_ext autoreload\n%autoreload 2", "import os\n%env MY_FLAG=1"])
def test_line_magics_above_the_first_stage_stay_setup(source):
    assert [c.number for c in plan(code(source), code("a = 1", "stage:load")).setup] == [1]


def test_explain_says_what_runs_at_the_top_of_every_stage_and_what_is_left_out(tmp_path, cli):
    nb = write_nb(
        tmp_path / "study.ipynb",
        md("# Study"),
        code("!pip install -r requirements.txt"),
        code("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nplt.rc('font', size=14)"),
        md("## Load"), code("import pandas as pd\npd.set_option('display.max_rows', 5)\nframe = pd.DataFrame({'a': [1, 2]})"),
        md("## Report"), code("print(frame)"),
    )
    exit_code, out, err = cli("explain", nb)
    assert exit_code == 0, err
    assert "setup   cell 3 runs at the top of every stage" in out
    assert "cell 3 configures: matplotlib.use('Agg'); plt.rc('font', size=14)" in out
    assert "warning cell 2 ('!pip install -r requirements.txt') installs packages" in out
    report = out[out.index("stage report"):]
    assert "setup   cell 5's configuration, as the notebook's kernel had it: pd.set_option('display.max_rows', 5)" in report
    exit_code, out, err = cli("explain", nb, "--json")
    info = json.loads(out)
    assert info["setup"] == [{"cell": 3, "configures": ["matplotlib.use('Agg')", "plt.rc('font', size=14)"]}]
    assert info["installs"] == [{"cell": 2, "lines": ["!pip install -r requirements.txt"]}]
    assert [s["replayed"] for s in info["stages"]] == [[], [{"cell": 5, "configures": ["pd.set_option('display.max_rows', 5)"]}]]


def test_replayed_configuration_runs_in_the_later_stage_and_shows_nothing_there(tmp_path, cli):
    nb = write_nb(
        tmp_path / "nb.ipynb",
        md("## Compute"), code("import numpy as np\nvalues = np.linspace(0, 1, 4)"),
        code("np.set_printoptions(precision=2)\nnp.seterr(all='ignore')"),  # np comes from the cell above
        md("## Show"), code("print(values, np.array([1.0]) / 0)"),
    )
    exit_code, _, err = cli("run", nb)
    assert exit_code == 0, err
    (executed,) = (tmp_path / "pipelines" / "nb" / "runs").glob("*/show.ipynb")
    cells = json.loads(executed.read_text())["cells"]
    configuration = [c for c in cells if c["metadata"].get("title", "").endswith("(configuration)")]
    assert len(configuration) == 1 and configuration[0]["outputs"] == []
    (shown,) = [c for c in cells if c["metadata"].get("title") == "nb.ipynb cell 5"]
    assert "".join(shown["outputs"][0]["text"]) == "[0.   0.33 0.67 1.  ] [inf]\n"


def test_an_install_cell_holding_a_lone_surrogate_is_refused_in_one_line(tmp_path, cli):
    notebook = tmp_path / "nb.ipynb"
    cells = [code("!pip install 'x\\ud800'"), code("a = 1", "stage:s")]
    text = json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    notebook.write_text(text.replace("\\\\ud800", "\\ud800"))  # JSON allows a lone surrogate
    status, _, err = cli("export", notebook)
    assert status == 2 and err.count("\n") == 1 and "cell 1" in err and "U+D800" in err
