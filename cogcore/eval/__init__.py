"""Evaluation: lm-eval tasks over the run's own data, the agentic search check, BFCL, memorization
and measured throughput, written to eval/results.json (`results.EvalResults`)."""
