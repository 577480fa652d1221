"""infomug: how much does an encoder's representation know, and does knowing more transfer better?

The trainer, measurement and experiments build on the standalone ``estimators`` package.
"""

__version__ = "0.1.0"
