#!/usr/bin/env python
"""Generate the nb2pipe example notebooks.

Run from anywhere:

    python example_notebooks/make_examples.py

The output is deterministic: cell ids are sequential ("c01", "c02", ...),
no outputs, no execution counts, so re-running rewrites the three
notebooks byte-identically.
"""
import os
import textwrap

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = os.path.dirname(os.path.abspath(__file__))

METADATA = {
    "kernelspec": {
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "name": "python3",
    },
    "language_info": {"name": "python"},
}


def _src(text):
    return textwrap.dedent(text).strip("\n")


def md(text):
    return ("markdown", _src(text), [])


def code(text, *tags):
    return ("code", _src(text), list(tags))


def build(cells):
    nb = new_notebook(metadata=METADATA)
    nb.nbformat, nb.nbformat_minor = 4, 5
    for i, (kind, source, tags) in enumerate(cells, start=1):
        cid = "c%02d" % i
        if kind == "markdown":
            cell = new_markdown_cell(source, id=cid)
        else:
            cell = new_code_cell(source, id=cid)
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


# ---------------------------------------------------------------------------
# 1. wine_quality.ipynb -- nb2pipe tags, linear 4-stage pipeline
# ---------------------------------------------------------------------------
WINE = [
    md("""
        # Wine cultivar classification

        A small random-forest pipeline on scikit-learn's bundled wine data set,
        tagged for **nb2pipe**: `load` -> `split` -> `train` -> `evaluate`.
        Stages exchange data only through files under `data/`, `models/` and
        `reports/`. Only five of the thirteen measurements are kept, so the
        classes overlap and every parameter moves the metrics.
        """),
    code("""
        import os

        import joblib
        import pandas as pd
        from sklearn.datasets import load_wine
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, log_loss
        from sklearn.model_selection import train_test_split


        def ensure_parent(path):
            \"\"\"Create the parent folder of *path* and return *path* unchanged.\"\"\"
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            return path
        """, "setup"),
    code("""
        test_size = 0.25
        n_estimators = 10
        max_depth: int = 2
        seed = 42  # fixed seed so every run is identical
        """, "parameters"),
    md("""
        ## Load

        Read the bundled data set, keep five measurements, and store it as a plain CSV.
        """),
    code("""
        raw = load_wine(as_frame=True)
        features = ["alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium"]
        df = raw.frame[features + ["target"]]
        print(f"load: {df.shape[0]} rows, {df.shape[1] - 1} features")
        """, "stage:load"),
    code("""
        df.to_csv(ensure_parent("data/wine.csv"), index=False)
        print("load: class counts", df["target"].value_counts().sort_index().to_dict())
        """, "out:data/wine.csv"),
    md("""
        ## Split

        Stratified train/test split controlled by `test_size` and `seed`.
        """),
    code("""
        df = pd.read_csv("data/wine.csv")
        train_df, test_df = train_test_split(
            df, test_size=test_size, random_state=seed, stratify=df["target"]
        )
        """, "stage:split", "after:load", "in:data/wine.csv"),
    code("""
        train_df.to_csv(ensure_parent("data/train.csv"), index=False)
        test_df.to_csv(ensure_parent("data/test.csv"), index=False)
        print(f"split: train={len(train_df)} test={len(test_df)}")
        """, "out:data/train.csv", "out:data/test.csv"),
    md("""
        ## Train

        Fit a random forest with `n_estimators` trees of depth `max_depth`.
        """),
    code("""
        train_df = pd.read_csv("data/train.csv")
        X_train = train_df.drop(columns=["target"])
        y_train = train_df["target"]
        model = RandomForestClassifier(
            n_estimators=n_estimators, max_depth=max_depth, random_state=seed
        )
        model.fit(X_train, y_train)
        print(f"train: train accuracy={model.score(X_train, y_train):.4f}")
        """, "stage:train", "after:split", "in:data/train.csv"),
    code("""
        joblib.dump(model, ensure_parent("models/wine_rf.joblib"))
        print("train: saved models/wine_rf.joblib")
        """, "out:models/wine_rf.joblib"),
    md("""
        ## Evaluate

        Score the saved model on the held-out test set.
        """),
    code("""
        model = joblib.load("models/wine_rf.joblib")
        test_df = pd.read_csv("data/test.csv")
        X_test = test_df.drop(columns=["target"])
        y_test = test_df["target"]
        y_pred = model.predict(X_test)
        y_proba = model.predict_proba(X_test)
        """, "stage:evaluate", "after:train", "in:models/wine_rf.joblib", "in:data/test.csv"),
    code("""
        accuracy = float(accuracy_score(y_test, y_pred))
        f1_macro = float(f1_score(y_test, y_pred, average="macro"))
        logloss = float(log_loss(y_test, y_proba, labels=model.classes_))
        print(f"evaluate: accuracy={accuracy:.4f} f1_macro={f1_macro:.4f} logloss={logloss:.4f}")
        """, "metrics"),
    code("""
        labels = sorted(y_test.unique())
        confusion = pd.DataFrame(
            confusion_matrix(y_test, y_pred, labels=labels),
            index=[f"true_{k}" for k in labels],
            columns=[f"pred_{k}" for k in labels],
        )
        confusion.to_csv(ensure_parent("reports/wine_confusion.csv"))
        print(confusion)
        """, "out:reports/wine_confusion.csv"),
]


# ---------------------------------------------------------------------------
# 2. diabetes_kale.ipynb -- Kale tags, diamond-shaped pipeline
# ---------------------------------------------------------------------------
DIABETES = [
    md("""
        # Diabetes progression: ridge vs. random forest

        Tagged with **Kale** vocabulary (`imports`, `functions`,
        `pipeline-parameters`, `block:`, `prev:`, `pipeline-metrics`, `skip`).
        `load_data` fans out to two parallel training blocks, which join again
        in `compare`. Blocks exchange data only through files.
        """),
    code("""
        import os

        import joblib
        import numpy as np
        import pandas as pd
        from sklearn.datasets import load_diabetes
        from sklearn.ensemble import RandomForestRegressor
        from sklearn.linear_model import Ridge
        from sklearn.metrics import r2_score
        """, "imports"),
    code("""
        def ensure_parent(path):
            \"\"\"Create the parent folder of *path* and return *path* unchanged.\"\"\"
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            return path


        def read_split(path, part):
            \"\"\"Return (X, y) for the rows of *path* whose `split` column equals *part*.\"\"\"
            frame = pd.read_csv(path)
            frame = frame[frame["split"] == part]
            return frame.drop(columns=["split", "target"]), frame["target"]
        """, "functions"),
    code("""
        alpha = 1.0
        n_estimators = 40
        seed = 0
        """, "pipeline-parameters"),
    md("""
        ## Load data

        Store the data set with a fixed train/test assignment in a `split` column,
        so both training blocks and the comparison see exactly the same rows.
        """),
    code("""
        raw = load_diabetes(as_frame=True)
        df = raw.frame
        rng = np.random.RandomState(seed)
        df["split"] = np.where(rng.rand(len(df)) < 0.2, "test", "train")
        print(f"load_data: {len(df)} rows, split counts {df['split'].value_counts().to_dict()}")
        """, "block:load_data"),
    code("""
        df.to_csv(ensure_parent("data/diabetes.csv"), index=False)
        print("load_data: wrote data/diabetes.csv")
        """, "out:data/diabetes.csv"),
    code("""
        # Exploration only -- not part of the pipeline.
        print(df.describe().T[["mean", "std", "min", "max"]].round(3))
        """, "skip"),
    md("""
        ## Train a ridge regression
        """),
    code("""
        X_train, y_train = read_split("data/diabetes.csv", "train")
        ridge = Ridge(alpha=alpha).fit(X_train, y_train)
        print(f"train_ridge: alpha={alpha} train r2={ridge.score(X_train, y_train):.4f}")
        """, "block:train_ridge", "prev:load_data", "in:data/diabetes.csv"),
    code("""
        joblib.dump(ridge, ensure_parent("models/ridge.joblib"))
        """, "out:models/ridge.joblib"),
    md("""
        ## Train a random forest
        """),
    code("""
        X_train, y_train = read_split("data/diabetes.csv", "train")
        forest = RandomForestRegressor(
            n_estimators=n_estimators, max_depth=6, random_state=seed
        ).fit(X_train, y_train)
        print(f"train_forest: n_estimators={n_estimators} train r2={forest.score(X_train, y_train):.4f}")
        """, "block:train_forest", "prev:load_data", "in:data/diabetes.csv"),
    code("""
        joblib.dump(forest, ensure_parent("models/forest.joblib"))
        """, "out:models/forest.joblib"),
    md("""
        ## Compare

        Score both saved models on the shared test rows.
        """),
    code("""
        X_test, y_test = read_split("data/diabetes.csv", "test")
        ridge = joblib.load("models/ridge.joblib")
        forest = joblib.load("models/forest.joblib")
        """, "block:compare", "prev:train_ridge", "prev:train_forest",
        "in:data/diabetes.csv", "in:models/ridge.joblib", "in:models/forest.joblib"),
    code("""
        r2_ridge = float(r2_score(y_test, ridge.predict(X_test)))
        r2_forest = float(r2_score(y_test, forest.predict(X_test)))
        best_r2 = max(r2_ridge, r2_forest)
        print(f"compare: r2_ridge={r2_ridge:.4f} r2_forest={r2_forest:.4f} best_r2={best_r2:.4f}")
        """, "pipeline-metrics"),
    code("""
        comparison = pd.DataFrame(
            {"model": ["ridge", "forest"], "r2": [r2_ridge, r2_forest]}
        ).sort_values("r2", ascending=False)
        comparison.to_csv(ensure_parent("reports/diabetes_comparison.csv"), index=False)
        print(comparison.to_string(index=False))
        """, "out:reports/diabetes_comparison.csv"),
]


# ---------------------------------------------------------------------------
# 3. breast_cancer_untagged.ipynb -- no tags, in-memory flow between sections
# ---------------------------------------------------------------------------
CANCER = [
    md("""
        # Breast cancer diagnosis

        An ordinary, untagged notebook: variables flow in memory from one
        section to the next. nb2pipe can split it at the `##` headings.
        """),
    code("""
        import os

        import pandas as pd
        from sklearn.datasets import load_breast_cancer
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import accuracy_score, roc_auc_score
        from sklearn.model_selection import train_test_split
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        """),
    md("""
        ## Load the data
        """),
    code("""
        data = load_breast_cancer(as_frame=True)
        df = data.frame.copy()
        features = [c for c in df.columns if c.startswith("mean ")]
        print(f"{df.shape[0]} samples, {df.shape[1] - 1} columns, starting with {len(features)} 'mean' features")
        """),
    md("""
        ## Explore
        """),
    code("""
        print("class balance (0=malignant, 1=benign):", df["target"].value_counts().sort_index().to_dict())
        corr = df[features].corrwith(df["target"]).sort_values()
        print(corr.round(3).head())
        """),
    code("""
        # The standard-error columns are noisy; remove them from the frame.
        error_cols = [c for c in df.columns if c.endswith(" error")]
        for col in error_cols:
            del df[col]

        # Add the single most informative "worst" feature to the feature list.
        worst_cols = [c for c in df.columns if c.startswith("worst ")]
        strongest_worst = df[worst_cols].corrwith(df["target"]).abs().idxmax()
        features.append(strongest_worst)
        print(f"dropped {len(error_cols)} error columns; added {strongest_worst!r} -> {len(features)} features")
        """),
    md("""
        ## Train a model
        """),
    code("""
        X = df[features]
        y = df["target"]
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=0.25, random_state=0, stratify=y
        )
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        model.fit(X_train, y_train)
        print(f"trained on {X_train.shape[0]} rows x {X_train.shape[1]} features")
        """),
    md("""
        ## Evaluate
        """),
    code("""
        proba = model.predict_proba(X_test)[:, 1]
        pred = model.predict(X_test)
        accuracy = accuracy_score(y_test, pred)
        auc = roc_auc_score(y_test, proba)
        print(f"accuracy={accuracy:.4f} roc_auc={auc:.4f}")
        """),
    code("""
        scores = pd.DataFrame(
            {
                "row": X_test.index,
                "y_true": y_test.to_numpy(),
                "y_pred": pred,
                "p_benign": proba.round(6),
            }
        ).sort_values("row")
        os.makedirs("reports", exist_ok=True)
        scores.to_csv("reports/cancer_scores.csv", index=False)
        print(f"wrote reports/cancer_scores.csv ({len(scores)} rows)")
        """),
]


NOTEBOOKS = {
    "wine_quality.ipynb": WINE,
    "diabetes_kale.ipynb": DIABETES,
    "breast_cancer_untagged.ipynb": CANCER,
}


def main():
    for name, cells in NOTEBOOKS.items():
        path = os.path.join(HERE, name)
        nbformat.write(build(cells), path)
        print("wrote", os.path.relpath(path))


if __name__ == "__main__":
    main()
