"""`python -m vpipe_operator`: the same as `vpipe operator`."""

import sys

from vpipe_operator.main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="python -m vpipe_operator"))
