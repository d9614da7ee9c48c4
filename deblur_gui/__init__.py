"""deblur."""
