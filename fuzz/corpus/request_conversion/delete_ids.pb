
pacsa.jpgb.jpg