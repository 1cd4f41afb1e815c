import sys

from tests.visual.run import main

sys.exit(main())
