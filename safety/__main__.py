import sys

from safety.commands.main import main

sys.exit(main())
