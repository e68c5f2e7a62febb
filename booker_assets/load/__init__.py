"""From Booker's replies to table rows: the extractor, flattening, PII, frames."""
