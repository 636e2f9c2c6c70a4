import gc
import os
import sys

# NumPy's and SciPy's OpenBLAS each start a thread per core that spins between calls; a command's numeric work is
# small (a few frames, beta-binomial tails), so the spinning only took cores from DuckDB: about 1 % of a load's
# CPU (docs/performance-history.md). Set before anything imports NumPy; a value the user set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from safety.commands.main import main  # noqa: E402  (after the environment it must see)

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
# The command is done. Python's exit runs a last full collection over every object alive, 0.15-0.2 s once an
# ingest or export has imported pandas, SciPy and DuckDB's helpers; their objects live to the end anyway, so
# they are moved out of its reach (atexit handlers and the flushing of files still run as usual).
gc.freeze()
sys.exit(code)
