"""Curation: read sources, clean, filter, deduplicate, find facts; every document accounted for."""
