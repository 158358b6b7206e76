# Table 2, Cascade Mask R-CNN ResNet-101 (c2am).
_base_ = './cascade-mask-rcnn_r50_fpn_c2am_ms-2x_lvis-v1.py'
model = dict(backbone=dict(depth=101,
                           init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))
