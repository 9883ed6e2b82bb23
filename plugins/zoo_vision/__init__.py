"""Computer vision of the classic course: the FashionMNIST models V0/V1, TinyVGG and the
image datasets torchvision reads from a local root (``root=`` or ``$ZOO_DATA``)."""

import zoo

CLASSIFICATION = ["binary", "multiclass"]


@zoo.hookimpl
def register_models(register):
    register(
        "fashion-v0",
        "zoo_vision.models:FashionV0",
        tasks=CLASSIFICATION,
        input_kind="image",
        input_size=[1, 28, 28],  # FashionMNIST's; any size works (image_size)
        summary="FashionMNIST model V0: flatten + two linear layers",
        defaults={"hidden": 10},
    )
    register(
        "fashion-v1",
        "zoo_vision.models:FashionV1",
        tasks=CLASSIFICATION,
        input_kind="image",
        input_size=[1, 28, 28],  # FashionMNIST's; any size works (image_size)
        summary="FashionMNIST model V1: flatten + linear layers with ReLU",
        defaults={"hidden": 10},
    )
    register(
        "tinyvgg",
        "zoo_vision.models:TinyVGG",
        tasks=CLASSIFICATION,
        input_kind="image",
        input_size=[1, 28, 28],  # FashionMNIST's; any size works (image_size)
        summary="TinyVGG CNN (CNN explainer): two conv blocks + linear head",
        defaults={"hidden": 64},  # 5 epochs on digits reach >= 0.95 test accuracy for any seed
        classifier="classifier.1",  # its input depends on image_size
    )


@zoo.hookimpl
def register_datasets(register):
    register(
        "fashion-mnist",
        "zoo_vision.data:fashion_mnist",
        task="multiclass",
        input_shape=(1, 28, 28),
        num_classes=10,
        preprocessing="pixels scaled to [0, 1]",
        root="$ZOO_DATA/FashionMNIST/raw",
        summary="Zalando FashionMNIST 28x28 grey, 60k/10k (local root; download=True online)",
    )
    register(
        "mnist",
        "zoo_vision.data:mnist",
        task="multiclass",
        input_shape=(1, 28, 28),
        num_classes=10,
        preprocessing="pixels scaled to [0, 1]",
        root="$ZOO_DATA/MNIST/raw",
        summary="MNIST handwritten digits 28x28, 60k/10k (local root; download=True online)",
    )
    register(
        "cifar10",
        "zoo_vision.data:cifar10",
        task="multiclass",
        input_shape=(3, 32, 32),
        num_classes=10,
        preprocessing="pixels scaled to [0, 1]",
        root="$ZOO_DATA/cifar-10-batches-bin",
        summary="CIFAR-10 32x32 colour, 50k/10k, binary version (a Dataset, read lazily)",
    )
