"""``python -m tf_reference.import_keras in.keras model.npz``: a Keras model to a scratchnet model file.

The reverse of ``python -m tf_reference.export``; see `tf_reference.export` for what is checked and the exit
statuses (0 success, 1 bad input with one line on stderr, 2 usage).
"""
import sys

from tf_reference.export import main

if __name__ == "__main__":
    sys.exit(main(direction="import"))
