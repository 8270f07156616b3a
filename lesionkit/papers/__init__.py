"""One module per notebook: its config class and the steps its cells call (the notebook tells the story)."""

# notebooks/<name>.ipynb -> "module:Config class" its parameters cell is generated from (`python -m lesionkit params`)
NOTEBOOK_CONFIGS = {
    "00_quickstart": "lesionkit.papers.quickstart.recipe:QuickstartConfig",
    "arl": "lesionkit.papers.arl.recipe:ARLConfig",
    "compare": "lesionkit.papers.compare.recipe:CompareConfig",
    "attention_b3": "lesionkit.papers.attention_b3.recipe:AttentionB3Config",
    "multimodal": "lesionkit.papers.multimodal.recipe:MultimodalConfig",
    "patch_attention": "lesionkit.papers.patch_attention.recipe:PatchAttentionConfig",
    "se_lcn": "lesionkit.papers.se_lcn.recipe:SELCNConfig",
}
