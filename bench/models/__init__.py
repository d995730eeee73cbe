"""Models: backbones and their cut points, the fine-tuning model, the optimizer that
scales the backbone's learning rate, augmentation, and source-task pretraining."""
