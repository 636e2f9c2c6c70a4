import os
import sys

from safety.commands.main import main

try:
    try:
        code = main()
    except SystemExit as exc:  # argparse's --help and usage errors end this way
        code = exc.code
    sys.stdout.flush()  # inside the try: a reader that left (`| head`) shows up here, not at interpreter exit
except BrokenPipeError:
    # the command's output has nowhere to go; say nothing more (Python's documented way to leave quietly)
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    code = 1
sys.exit(code)
