"""The classic PyTorch workflow as first-party plugins: linear models, an MLP, the straight line."""

import zoo


@zoo.hookimpl
def register_models(register):
    register(
        "linear-regression",
        "zoo_workflow.models:LinearRegression",
        task="regression",
        input_kind="features",
        summary="y = weight * x + bias with raw nn.Parameter (the original workflow)",
    )
    register(
        "linear",
        "zoo_workflow.models:Linear",
        input_kind="features",
        summary="One nn.Linear layer (linear/logistic/softmax regression)",
    )
    register(
        "mlp",
        "zoo_workflow.models:MLP",
        input_kind="features",
        summary="Multi-layer perceptron with ReLU (configurable hidden sizes)",
        defaults={"hidden": [64, 64]},
        classifier="layers.-1",
    )


@zoo.hookimpl
def register_datasets(register):
    register(
        "line",
        "zoo_workflow.data:line",
        task="regression",
        input_shape=(1,),
        preprocessing="none",
        summary="Straight line y = 0.7x + 0.3, 50 noise-free points, first 80% train",
    )
