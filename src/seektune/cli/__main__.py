import sys

from seektune.cli import main

sys.exit(main())
