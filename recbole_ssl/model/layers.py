"""recbole_ssl.model.layers: small pieces shared by the plugin's models."""


def length_bands(max_width, smallest=8):
    """Upper bounds of the length bands rows are grouped into: 8, 16, 32, ...,
    ``max_width``. Both the length-grouped encoder and the ``concat`` Gram matrix work
    band by band, so short sequences skip the work on padding."""
    bands = []
    width = smallest
    while width < max_width:
        bands.append(width)
        width *= 2
    return [*bands, max_width]
