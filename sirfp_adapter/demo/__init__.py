"""The demonstration harness around the pruning library (the library never imports it).

* `sirfp_adapter.demo.data` — built-in synthetic segmentation data and a folder reader;
* `sirfp_adapter.demo.metrics` — confusion matrix, mIoU, pixel accuracy;
* `sirfp_adapter.demo.models` — small DeepLab-style networks (basic-block and bottleneck);
* `sirfp_adapter.demo.experiment` — the ``sirfp prune`` pipeline: train, prune, fine-tune, report;
* `sirfp_adapter.demo.cli` — the ``sirfp`` command.
"""
