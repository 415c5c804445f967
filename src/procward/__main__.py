"""``python -m procward`` runs the command-line interface."""

from procward.cli import console

console()
