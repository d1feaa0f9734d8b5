"""Training: continued pretraining with fact-aware loss masks, then tool-use fine-tuning."""
