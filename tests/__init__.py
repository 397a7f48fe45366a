from pathlib import Path

#: The repository's root: its examples/, docs/, bench/ and the trace viewer's static files.
ROOT = Path(__file__).resolve().parents[1]
