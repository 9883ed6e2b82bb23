"""First-party losses: torch.nn's regression and classification losses.

``bce`` and ``nll`` declare what they expect from the model, so zoo applies the sigmoid
(or log-softmax) to the logits of the same models that ``bce-with-logits`` and
``cross-entropy`` train directly.
"""

import zoo

REGRESSION = ["regression"]
BINARY = ["binary"]
MULTICLASS = ["multiclass"]


@zoo.hookimpl
def register_losses(register):
    register("l1", "torch.nn:L1Loss", tasks=REGRESSION, summary="Mean absolute error (nn.L1Loss)")
    register("mse", "torch.nn:MSELoss", tasks=REGRESSION, summary="Mean squared error (nn.MSELoss)")
    register("huber", "torch.nn:HuberLoss", tasks=REGRESSION, summary="Huber loss (nn.HuberLoss)")
    register(
        "bce-with-logits",
        "torch.nn:BCEWithLogitsLoss",
        tasks=BINARY,
        summary="Binary cross-entropy on logits, sigmoid built in (nn.BCEWithLogitsLoss)",
    )
    register(
        "bce",
        "torch.nn:BCELoss",
        tasks=BINARY,
        expects="probabilities",
        summary="Binary cross-entropy on probabilities; zoo applies the sigmoid (nn.BCELoss)",
    )
    register(
        "cross-entropy",
        "torch.nn:CrossEntropyLoss",
        tasks=MULTICLASS,
        summary="Cross-entropy on logits, label_smoothing option (nn.CrossEntropyLoss)",
    )
    register(
        "nll",
        "torch.nn:NLLLoss",
        tasks=MULTICLASS,
        expects="log-probabilities",
        summary="Negative log-likelihood; zoo applies log-softmax (nn.NLLLoss)",
    )
