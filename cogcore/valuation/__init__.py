"""Data valuation: what each curated document is worth to the model, and which ones training sees.

Scorers value documents (target importance, a quality classifier, losses under proxy models),
selection spends a token budget on the best of them (every document accounted for), and mixture
weights say how much of each group training draws. The `select` stage (cogcore/stages/select.py)
runs them from the recipe; train.cpt reads what it chose. The index still covers every curated
document: selection changes only what training sees.
"""
