"""Example pipelines shipped with dualrun. Generic modules never import from here."""
