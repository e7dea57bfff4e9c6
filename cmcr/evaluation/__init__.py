"""How well a space connects modalities: the synthetic MCR world (`synthetic`), retrieval
protocols (`protocols`) and the reproduction of the official inference example (`official`)."""
