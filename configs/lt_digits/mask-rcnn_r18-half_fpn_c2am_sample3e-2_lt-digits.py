# LT-Digits, C2AM with repeat-factor sampling (RFS; the paper's Table 6 setting). Threshold
# 0.03 instead of LVIS's 1e-3: RFS repeats an image sqrt(t / f_c) times for its rarest category
# of image fraction f_c, and LVIS's 1e-3 of ~100k training images is a category in fewer than
# 100 images, the common / frequent boundary. LT-Digits has ~3.4k training images, so the same
# 100-image boundary is t = 100 / 3422 ~ 0.03: rare categories repeat 3.2-7.2x, common 1-3x,
# frequent 1x, as on LVIS (1e-3 here would repeat only the two rarest categories, <= 1.3x).
_base_ = './mask-rcnn_r18-half_fpn_c2am_lt-digits.py'
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ClassBalancedDataset',
        oversample_thr=0.03,
        dataset={{_base_.train_dataloader.dataset}}))
