import sys

from neurotop.trainer.demo.autoencoder import main

sys.exit(main())
