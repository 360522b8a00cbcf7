"""The anonymising broker: a blinded match index held as bitmaps, differentially private
counts, and (next) pseudonymous offers."""
