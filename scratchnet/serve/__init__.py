"""Draw a character in the browser and watch the network read it: ``python -m scratchnet.serve``.

A local web page (no framework, no build step, no CDN) with a canvas for mouse, touch and pen, live top-k
predictions, the 28x28 image the network sees and the first conv layer's feature maps, and a "Wrong? It
is: [ ]" box that saves the drawing under the right class so a model can be fine-tuned on the user's hand.

* :mod:`~scratchnet.serve.cli`          the command line: options, the default model, ``serving on URL``
* :mod:`~scratchnet.serve.server`       the HTTP routes and every check on a request
* :mod:`~scratchnet.serve.reader`       the model, its class names, and the lock around it
* :mod:`~scratchnet.serve.images`       request bodies into images (PNG and JPEG only, size limits)
* :mod:`~scratchnet.serve.corrections`  saving corrected drawings as ``<folder>/<label>/NNNN.png``
* ``static/``                           the page: index.html, app.js, style.css
"""

from .cli import main
from .corrections import Corrections
from .reader import Reader
from .server import make_server

__all__ = ["Corrections", "Reader", "main", "make_server"]
