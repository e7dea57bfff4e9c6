"""How well a space connects modalities: retrieval metrics (`metrics`, a numpy-only leaf), the
synthetic MCR world (`synthetic`), evaluation protocols (`protocols`) and the reproduction of the
official inference example (`official`)."""
