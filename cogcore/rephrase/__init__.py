"""Rephrasing: rewrites of training passages that are easier to learn from (Q&A, knowledge lists,
plainer prose) and keep every fact of their source; the fact gate (`gate`) decides which to keep."""
