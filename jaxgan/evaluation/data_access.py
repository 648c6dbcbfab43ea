"""The one place the evaluation reaches the data loader (its module path moves with the layout)."""


def load_dataset(data_config):
    """The training data of `data_config`: an object with images (uint8 NHWC, indexable by int
    arrays), labels, class_names, num_classes and close()."""
    from jaxgan import data as data_lib
    return data_lib.load(data_config)


def load_sampler(workdir, step=None):
    from jaxgan.art.sampling import load_sampler as load
    return load(workdir, step)
