"""Rate-distortion evaluation: metrics, classical baselines, sweeps and reports (`cod-diffc evaluate`).

- [`metrics`]: PSNR and MS-SSIM on 8-bit images, LPIPS / DISTS when their packages and weights are on the machine;
- [`baselines`]: JPEG, WebP, AVIF and JPEG XL at rates matched by searching their quality setting;
- [`bjontegaard`]: BD-rate and BD-PSNR;
- [`sweep`]: methods, per-(method, image) records, CompressAI result JSON and the per-image CSV;
- [`report`]: the RD plot, the BD table and side-by-side crops.
"""
