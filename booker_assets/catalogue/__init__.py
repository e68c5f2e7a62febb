"""What Booker offers, as data: every report, its calls, options and tables."""
