import sys

from trainer.demo.autoencoder import main

sys.exit(main())
