"""``python -m handoff.cli``: the ``handoff`` command."""

from . import main

if __name__ == "__main__":
    main()
