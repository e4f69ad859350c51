"""spectrotune: music-genre classification from folders of audio to a trained classifier, on Ray.

See README.md for the commands; DESIGN notes live with the team. Importing the package never imports ``ray``:
only :mod:`spectrotune.prepare.driver`, :mod:`spectrotune.training.driver` and :mod:`spectrotune.tuning` touch Ray.
"""

__version__ = "0.1.0"
