# LT-Digits, C2AM with weight decay 0.025 (250 x the base 1e-4) on the box classifier only (a
# remedy studied against C2AM's frequent-category AP loss; not in the paper). The cosine
# classifier's logits ignore its row norms, so the decay acts on the norms Eq. 7 reads: at lr 0.04
# it pulls them towards an equilibrium set by the recent gradients within ~1 / (2 lr wd) = 500
# iterations, instead of letting them integrate every past gradient.
_base_ = './mask-rcnn_r18-half_fpn_c2am_lt-digits.py'
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'roi_head.bbox_head.fc_cls': dict(decay_mult=250.0)}))
