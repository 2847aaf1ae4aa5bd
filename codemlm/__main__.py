import sys

from codemlm.cli import main

sys.exit(main())
