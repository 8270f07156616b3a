"""Plots for reports and notebooks; see `lesionkit.viz.plots`."""
