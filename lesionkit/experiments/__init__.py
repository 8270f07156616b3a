"""One module per notebook: its config class and the steps its cells call (the notebook tells the story)."""

# notebooks/<name>.ipynb -> "module:Config class" its parameters cell is generated from (`python -m lesionkit params`)
NOTEBOOK_CONFIGS = {
    "00_quickstart": "lesionkit.experiments.quickstart:QuickstartConfig",
    "arl": "lesionkit.experiments.arl:ARLConfig",
    "compare": "lesionkit.experiments.compare:CompareConfig",
    "attention_b3": "lesionkit.experiments.attention_b3:AttentionB3Config",
    "multimodal": "lesionkit.experiments.multimodal:MultimodalConfig",
    "patch_attention": "lesionkit.experiments.patch_attention:PatchAttentionConfig",
    "se_lcn": "lesionkit.experiments.se_lcn:SELCNConfig",
}
