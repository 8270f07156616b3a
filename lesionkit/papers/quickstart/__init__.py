"""The quickstart notebook's recipe: a timm classifier on a grouped split, scored like ISIC."""
