"""What a notMNIST archive holds: letters A..J as 28x28 images, and the marker that labels a synthetic one.

Shared by the pipeline (``notmnist``) and the synthetic renderer (``notmnist_synthetic``), so that neither
imports the other's constants: the pipeline uses the renderer, the renderer knows only this layout.
"""

LETTERS = tuple("ABCDEFGHIJ")
IMAGE_SIZE = 28
SYNTHETIC_MARKER = "SYNTHETIC-README.txt"  # in notMNIST_<large|small>/ of every archive notmnist_synthetic makes
