"""The bottom floor: reading, checking and writing images, tables and output folders."""
