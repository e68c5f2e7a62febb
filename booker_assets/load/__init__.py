"""From Booker's replies to table rows: the extractor, flattening, dates, zones, PII, frames."""
