"""Copy this file to search_spaces/NAME.py (the file name, without .py, is the space's name).

Files whose name starts with "_" are not spaces: this one is never listed or run.
"""

from bench.space import SearchSpace, SpaceSettings


class MySpace(SearchSpace):
    # One line, shown by `python run_bench.py list`.
    description = "what this space asks, in one line"
    # Raise it whenever the space changes meaning; run.json records it.
    version = 1
    # Fixed settings; the run settings can be overridden on the command line (--dataset,
    # --epochs, --repeats...), init fixed with --init; the model settings change here.
    # init, frozen_blocks, head_lr and body_lr_scale are the values the model builder uses
    # for those it does not find among the declared hyperparameters.
    settings = SpaceSettings(dataset="digits", backbone="resnet-mini", epochs=8, repeats=3,
                             init="pretrained", frozen_blocks=0, head_lr=1e-3)

    def declare(self, hp, *, num_blocks):
        # KerasTuner's hp API. Names the builder understands: init ("pretrained", "random",
        # "imagenet"), frozen_blocks (0..num_blocks), head_lr, body_lr_scale. Learning
        # rates log-scaled; give a Float a step to keep the space finite for grid search.
        hp.Choice("init", ["pretrained", "random"])
        hp.Int("frozen_blocks", 0, num_blocks, step=2)
        hp.Float("head_lr", 1e-3, 1e-1, sampling="log", step=10)

    # Optional hooks, each documented in bench/space.py and README's "Hooks reference":
    # augment(images, hp), build_head(features, num_classes, hp), optimizer(hp),
    # fit(parts, hp, run). One optimizer for every trial needs no hook: settings'
    # optimizer="SGD", optimizer_options=(("momentum", 0.9),). A hyperparameter only your
    # hooks read goes in extra_hyperparameters = ("my_name",).
