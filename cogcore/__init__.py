"""cogcore: build small domain cognitive cores from one recipe.

curate -> index -> train (cpt, tools) -> eval -> report; see README.md.
"""

__version__ = "0.1.0"
