"""``python -m geoprior.cli``: the same as the ``geoprior`` command."""

from . import main

if __name__ == "__main__":  # pragma: no cover
    main()
