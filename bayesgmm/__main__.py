"""``python -m bayesgmm``: the same as the ``bayesgmm`` command."""

import sys

from bayesgmm.cli import main

if __name__ == "__main__":
    sys.exit(main())
