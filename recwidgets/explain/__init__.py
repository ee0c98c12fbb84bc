"""Explanations of model behaviour: attention weights and their aggregates."""

from recwidgets.explain.attention import AttentionProfile as AttentionProfile
from recwidgets.explain.attention import AttentionResult as AttentionResult
from recwidgets.explain.attention import attention_data as attention_data
from recwidgets.explain.attention import attention_profile as attention_profile
from recwidgets.explain.attention import attention_weights as attention_weights
from recwidgets.explain.attention import compare_attention as compare_attention
from recwidgets.explain.attention import first_position_mass as first_position_mass
from recwidgets.explain.attention import head_entropy as head_entropy
from recwidgets.explain.attention import head_similarity as head_similarity
from recwidgets.explain.attention import popularity_buckets as popularity_buckets
from recwidgets.explain.attention import popularity_profile as popularity_profile
from recwidgets.explain.attention import recency_profile as recency_profile
