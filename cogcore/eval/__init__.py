"""Evaluation (lm-eval tasks, agentic search check), the cost model, and the report."""
