# AP-fixed test settings (Dave et al. 2021, "Evaluating Large-Vocabulary Object Detectors: The
# Devil is in the Details"): the metric keeps the top 10,000 detections of each category over
# the whole set, with no per-image cap, so the detector must emit more than the usual 300 per
# image, down to very low scores (their setting: up to 10,000 per class, min score 1e-7).
# Add this file after the model config:
#   _base_ = ['../mask_rcnn/mask-rcnn_r50_fpn_c2am_ms-2x_lvis-v1.py',
#             '../_base_/lvis_ap_fixed_test.py']
# and run tools/test.py. Memory grows with max_per_img (masks are pasted per detection).
model = dict(test_cfg=dict(rcnn=dict(score_thr=1e-7, max_per_img=1000)))
test_evaluator = dict(type='FastLVISMetric', fixed_ap=True, pool_ap=True)
