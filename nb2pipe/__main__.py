"""`python -m nb2pipe`: the same as the `nb2pipe` command."""

import sys

from nb2pipe.cli import main

if __name__ == "__main__":
    sys.exit(main())
